//! Black-box tests of the example programs (see tests/).
