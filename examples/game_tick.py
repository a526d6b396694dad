"""A game server's loop: a 20 Hz tick in one worker, players on any worker.

    gunicorn -k geworker.Worker -w 4 examples.game_tick:server

Players connect over WebSocket (GAME_ADDRESS, default 127.0.0.1:8091) and
are told their id: ``{"you": client_id}``. They steer by sending a direction,
``{"dx": 1, "dy": 0}`` (each -1, 0 or 1), kept in their session, which any
worker can read. Every 50 ms worker 0 asks every worker for the sessions of
the group ``players`` (``messaging.group_members``), moves everyone one step
in their direction on a 100 x 100 board, and sends the world to the group:
``{"tick": n, "players": {client_id: [x, y]}}``. A player who leaves drops
out of the next tick. The world lives in worker 0 only: when it restarts
(a reload), the game starts again.
"""

import json
import os

from geworker import Server, messaging, timers

server = Server(f"websocket://{os.environ.get('GAME_ADDRESS', '127.0.0.1:8091')}", name="game")
TICK = 0.05  # seconds: 20 Hz
SIZE = 100
world = {"tick": 0, "players": {}}  # client id -> [x, y]; in worker 0 only
ticking = False


@server.on_worker_start
def start(worker) -> None:
    if worker.index == 0:
        timers.add(TICK, tick)


def step(value: int, delta) -> int:
    return min(SIZE - 1, max(0, value + delta))


def tick() -> None:
    global ticking
    if ticking:  # the last tick still waits for a worker's answer: skip this one
        return
    ticking = True
    try:
        players = messaging.group_members("players")  # client id -> session, from every worker
        before = world["players"]
        world["tick"] += 1
        world["players"] = {}
        for client_id, session in players.items():
            x, y = before.get(client_id, (SIZE // 2, SIZE // 2))
            world["players"][client_id] = [step(x, session.get("dx", 0)),
                                           step(y, session.get("dy", 0))]
        messaging.send_to_group("players", json.dumps(world))
    finally:
        ticking = False


@server.on_websocket_connect
def join(conn, request) -> None:
    conn.join("players")
    conn.send(json.dumps({"you": conn.client_id}))


@server.on_message
def steer(conn, message) -> None:
    try:
        move = json.loads(message)
        dx, dy = int(move["dx"]), int(move["dy"])
    except (ValueError, TypeError, KeyError):
        conn.send(json.dumps({"error": 'send {"dx": -1|0|1, "dy": -1|0|1}'}))
        return
    conn.session = {"dx": max(-1, min(1, dx)), "dy": max(-1, min(1, dy))}
