//! Forking proxy core (in progress).
