//! shared e2e helpers live in hotline-testkit
