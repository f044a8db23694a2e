//! Every config shipped in configs/ loads and validates (paths resolve relative to the file).

use trtq::config::Config;

#[test]
fn every_shipped_config_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let c = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                c.model.starts_with(&dir),
                "{}: model path resolves inside configs/",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 6,
        "demo, reference and the four model-family configs"
    );
}
