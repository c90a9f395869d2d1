"""A game NPC you can talk to, in a dozen lines: the OnlyCS client behind a chat loop.

    ONLYCS_API_KEY=ocs-... python examples/npc_chat.py https://127.0.0.1:8443 --ca var/tls/ca.pem

Each player is a session, so the NPC remembers what was said; type `quit` to leave.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from onlycs import Client, OnlyCSError


def _lines() -> Iterator[str]:
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description="Talk to Old Tomas, the village lamplighter.")
    parser.add_argument("base_url")
    parser.add_argument("--ca", help="CA file that signed the appliance's certificate")
    parser.add_argument("--player", default="player-1", help="the player's id (a session)")
    args = parser.parse_args()

    npc = Client(args.base_url, os.environ.get("ONLYCS_API_KEY"), max_tokens=96,
                 verify=args.ca or True).with_personality("game_npc")
    for line in _lines():
        said = line.strip()
        if said in ("quit", "exit"):
            break
        if not said:
            continue
        print("Old Tomas> ", end="", flush=True)
        try:
            for piece in npc.stream(args.player, said):
                print(piece, end="", flush=True)
        except OnlyCSError as exc:
            print(f"[the NPC is unavailable: {exc}]", end="")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
