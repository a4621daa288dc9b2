"""The cold chain: pack-out planning (thermal model) and temperature loggers, each a
sub-package with its own app and manifest. Never imports fulfilment."""
