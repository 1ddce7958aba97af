"""Speed benchmarks of lsgan_jax against a PyTorch eager reference (`python -m benchmarks.run`)."""
