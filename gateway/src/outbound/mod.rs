//! Adapters the gateway drives: the services behind it ([`upstream`]) and the static web
//! root on disk ([`web_root`]).

pub mod upstream;
pub mod web_root;
