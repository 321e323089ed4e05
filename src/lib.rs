//! Test-suite package.
