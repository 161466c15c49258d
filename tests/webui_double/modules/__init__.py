"""A test double of AUTOMATIC1111's ``modules`` package (v1.10.1), only what the memstab adapter touches.

Behaviour follows ../../shared/research/host-api.md (section numbers in the docstrings). ``shared.HOST`` switches the
CFG denoiser between A1111 ("a1111") and a Forge-flavoured variant ("forge")."""
