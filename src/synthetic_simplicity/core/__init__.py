"""What every stage shares: config validation, seeds, device/precision, atomic writes, the image-set contract."""
