//! Helpers shared by the test modules: external tools and a scratch repository driven through
//! the binary ([`tools`]), and a tiny bert task and checkpoint ([`tiny_bert`]).

pub mod tiny_bert;
pub mod tools;
