//! Helpers shared by the test modules: external tools and a scratch repository driven through
//! the binary ([`tools`]), external servers stopped with their whole process group
//! ([`service`]), and a tiny bert task and checkpoint ([`tiny_bert`]).

pub mod service;
pub mod tiny_bert;
pub mod tools;
