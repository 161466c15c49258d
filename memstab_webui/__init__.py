"""The webui adapter of memstab: host glue around lib_memstab for AUTOMATIC1111 1.10, Forge and reForge.

Imported by scripts/memstab.py. Everything that touches the host's ``modules`` lives here; lib_memstab never imports
it. One idea per module: knobs (every knob, declared once) and args (the script's arguments), settings, ui, xyz;
registry (which run a host object belongs to), run (host events -> passes), passes (one sampling pass), hooks (CFG
callbacks), patches (chained sampler patches); family (latent channels and scale), profiles (which profile a job
uses), calibrate (reference generations through the host), manage and api (the panel's actions, the HTTP routes);
infotext (annotation, the infotext grammar), script (the Script lifecycle), plot, log.
"""

__version__ = "0.1.0"
TITLE = "Memorization guard"
