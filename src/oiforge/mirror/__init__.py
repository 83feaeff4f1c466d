"""The mirror stage: a local stand-in for the Open Images hosts, with a sample and faults.

- :func:`make_sample` writes a small deterministic sample (real class lists, generated rows
  in the official formats, JPEGs, planted faults, ``sample.json``);
  :func:`oiforge.mirror.scale.make_scaled` writes full-size-shaped metadata for benchmarks.
- :class:`MirrorServer` serves a sample on 127.0.0.1 from a background thread
  (``with MirrorServer(root) as srv: srv.url``); :func:`serve` blocks (the CLI).
- :class:`FaultRule` / :func:`parse_flag` / :func:`load_rules` describe injected faults.
"""

from oiforge.mirror.faults import FaultRule, load_rules, parse_flag
from oiforge.mirror.sample import SampleInfo, make_sample
from oiforge.mirror.server import MirrorServer, serve

__all__ = [
    "FaultRule",
    "MirrorServer",
    "SampleInfo",
    "load_rules",
    "make_sample",
    "parse_flag",
    "serve",
]
