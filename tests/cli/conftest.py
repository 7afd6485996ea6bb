from cli_helpers import fake_gradxray, gradxray  # noqa: F401  (fixtures)
