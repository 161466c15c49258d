"""The webui adapter of memstab: host glue around lib_memstab for AUTOMATIC1111 1.10, Forge and reForge.

Imported by scripts/memstab.py. Everything that touches the host's ``modules`` lives here; lib_memstab never imports
it. One idea per module: args (the script's arguments), profiles (on lib_memstab.ProfileStore), family (latent channels
and scale of the loaded model), run (per-run state and step tracking), hooks (CFG callbacks), patches (chained class
patches), calibrate (reference generations through the host), manage and api (the panel's actions, the HTTP routes),
infotext, script (the Script lifecycle), settings, ui, xyz, plot.
"""

__version__ = "0.1.0"
TITLE = "Memorization guard"
