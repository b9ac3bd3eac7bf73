//! The model registry: model versions with lineage, aliases and their history, artifacts in an object store.
