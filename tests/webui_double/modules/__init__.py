"""A test double of AUTOMATIC1111's ``modules`` package (v1.10.1), only what the memstab adapter touches.

Behaviour follows ../../shared/research/host-api.md (section numbers in the docstrings). ``shared.HOST`` switches the
CFG denoiser between A1111 ("a1111"), a Forge-flavoured variant ("forge": also process_before_every_sampling 3x with
hires) and a reForge-flavoured one ("reforge": reassigned params.x/sigma ignored, the Script hook
process_before_every_step at the top of Sampler.callback_state)."""
