//! ONNX protobuf: the message types ([`proto`]) and loading/saving models with external data.

pub mod proto;
