"""Settings modules: base (env-driven, embedded defaults), test, production."""
