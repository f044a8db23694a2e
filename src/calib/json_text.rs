//! The text layout of calib.json: objects one key per line, every array on one line.
//!
//! Owns only the layout (a serde_json formatter). Pretty-printing puts each histogram count on
//! a line of its own, which made the counts ~6× their compact size; keeping arrays on one line
//! leaves the keys (tensor names, amaxes, ranges) readable and the counts compact. It does not
//! decide what calib.json holds (`calibrate` does).

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use std::io::{self, Write};

/// `value` as JSON text with objects indented one key per line and arrays on one line.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut text = Vec::new();
    let formatter = InlineArrays {
        pretty: PrettyFormatter::new(),
        array_depth: 0,
    };
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut text, formatter,
    ))?;
    // serde_json writes valid UTF-8 only.
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Pretty outside arrays, compact inside them.
struct InlineArrays {
    pretty: PrettyFormatter<'static>,
    array_depth: usize,
}

impl InlineArrays {
    fn inline(&self) -> bool {
        self.array_depth > 0
    }
}

impl Formatter for InlineArrays {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.array_depth += 1;
        CompactFormatter.begin_array(writer)
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.array_depth = self.array_depth.saturating_sub(1);
        CompactFormatter.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        CompactFormatter.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        CompactFormatter.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.inline() {
            CompactFormatter.begin_object(writer)
        } else {
            self.pretty.begin_object(writer)
        }
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.inline() {
            CompactFormatter.end_object(writer)
        } else {
            self.pretty.end_object(writer)
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if self.inline() {
            CompactFormatter.begin_object_key(writer, first)
        } else {
            self.pretty.begin_object_key(writer, first)
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.inline() {
            CompactFormatter.begin_object_value(writer)
        } else {
            self.pretty.begin_object_value(writer)
        }
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.inline() {
            CompactFormatter.end_object_value(writer)
        } else {
            self.pretty.end_object_value(writer)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn objects_are_indented_and_arrays_inline() {
        let value = serde_json::json!({"a": {"runs": [[0, [1, 2]], {"k": 3}]}, "b": 1.5});
        let text = super::to_string(&value).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\": {\n    \"runs\": [[0,[1,2]],{\"k\":3}]\n  },\n  \"b\": 1.5\n}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }
}
