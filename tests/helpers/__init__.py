"""Helpers shared by the tests, one module per stage (imported as ``tests.helpers.<stage>``).

- :mod:`.catalog`: small Open Images-shaped metadata files written straight into a catalog cache
- :mod:`.download`: real JPEG bytes, selection tables of the mirror sample, a store's files
- :mod:`.distributed`: a store's lasting content, to compare two stores
- :mod:`.mirror`: a tiny real HTTP client (aiohttp, one request per call)
- :mod:`.serve`: a small training run dir, photo-like images, a live server
- :mod:`.golden`: compare with (or regenerate) the golden files in ``tests/golden/``

Fixtures stay in each folder's ``conftest.py``; these are plain functions and constants.
"""
