"""A small text-to-image diffusion model that memorizes, trained on this machine, and the benchmark around it.

Kept outside ``lib_memstab`` (the guard) and ``scripts`` (the webui adapter): it is evidence, not product.
"""
