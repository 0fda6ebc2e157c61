"""The peers ckptstore is measured against, one module each, and how to pick them."""

from __future__ import annotations

from collections.abc import Callable

from .base import Peer, Unavailable
from .ckpt import CkptPeer
from .floor import FloorPeer
from .git import GitPeer
from .json_files import JsonFilesPeer
from .langgraph_sqlite import SqliteSaverPeer

__all__ = ["FACTORIES", "Peer", "Unavailable", "make_peers"]

FACTORIES: dict[str, Callable[[], Peer]] = {
    "ckptstore": CkptPeer,
    "json-files": JsonFilesPeer,
    "git": GitPeer,
    "sqlite-saver": SqliteSaverPeer,
    "floor": FloorPeer,
}


def make_peers(names: list[str]) -> tuple[list[Peer], dict[str, str]]:
    """Build the named peers; return them and, for each one that cannot run here, why."""
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            peers.append(FACTORIES[name]())
        except Unavailable as err:
            skipped[name] = str(err)
    return peers, skipped
