//! Locating and loading a sentence-transformers model folder.
