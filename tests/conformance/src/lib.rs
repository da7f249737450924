//! The conformance suite (see tests/).
