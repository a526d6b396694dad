"""Canaries for the gunicorn internals geworker relies on (``geworker.worker._gunicorn``).

Each test names what geworker expects from the installed gunicorn; a failure
means gunicorn changed under us and says what to look at, before the
symptom shows up as a master that silently stops configuring, counting
exits or halting cleanly.
"""

from __future__ import annotations

import inspect
import queue
import re
import signal

import gunicorn
import pytest
from gunicorn.arbiter import Arbiter
from gunicorn.config import Config
from gunicorn.errors import HaltServer
from gunicorn.util import get_arity
from gunicorn.workers import base

from geworker.worker import _gunicorn, bootretry

HOOKS = {"child_exit": 2, "nworkers_changed": 3, "on_exit": 1, "on_reload": 1,
         "on_starting": 1, "when_ready": 1}


def _source(func) -> str:
    return inspect.getsource(func)


def test_tested_major_version():
    major = int(gunicorn.__version__.split(".")[0])
    assert major == 27, (f"gunicorn {gunicorn.__version__} is installed; geworker's use of its "
                         "internals is checked against 27 (pyproject.toml: gunicorn>=27.0,<28)")


def test_worker_class_property_calls_setup_with_config_as_self():
    prop = inspect.getattr_static(Config, "worker_class")
    assert isinstance(prop, property), "Config.worker_class is no longer a property"
    assert "worker_class.setup()" in _source(prop.fget), (
        "Config.worker_class no longer calls worker_class.setup(): geworker's master side "
        "(Worker.setup -> master.configure) would never run")


class _Probe:
    found = None

    @classmethod
    def setup(cls):
        cls.found = _gunicorn.calling_config()


def test_calling_config_finds_the_config_from_setup():
    cfg = Config()
    cfg.set("worker_class", f"{__name__}._Probe")
    _Probe.found = None
    assert cfg.worker_class is _Probe
    assert _Probe.found is cfg, ("calling_config() did not find the Config in the frames above "
                                 "Worker.setup(): the worker_class property changed")


def test_arbiter_signal_queue():
    assert "self.SIG_QUEUE = " in _source(Arbiter.__init__), (
        "Arbiter.__init__ no longer creates SIG_QUEUE (read by master_signal_queue)")
    assert "self.SIG_QUEUE.put_nowait(sig)" in _source(Arbiter.signal), (
        "Arbiter.signal no longer queues into SIG_QUEUE")
    assert "signal.signal(s, self.signal)" in _source(Arbiter.init_signals), (
        "Arbiter.init_signals no longer installs the bound Arbiter.signal as the handler "
        "(master_signal_queue finds the arbiter through it)")
    assert signal.SIGTERM in Arbiter.SIGNALS, "the arbiter no longer handles SIGTERM"


def test_master_signal_queue_reads_the_installed_handler():
    class Holder:
        SIG_QUEUE = queue.SimpleQueue()

        def signal(self, sig, frame):
            self.SIG_QUEUE.put_nowait(sig)

    holder = Holder()
    previous = signal.signal(signal.SIGTERM, holder.signal)
    try:
        assert _gunicorn.master_signal_queue() is Holder.SIG_QUEUE
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert isinstance(_gunicorn.master_signal_queue(), queue.SimpleQueue)  # no arbiter: empty


def test_reap_workers_has_the_wait_status_and_calls_child_exit():
    code = Arbiter.reap_workers.__code__
    assert "status" in code.co_varnames, (
        "Arbiter.reap_workers no longer has a local named 'status' (caller_wait_status reads it)")
    source = _source(Arbiter.reap_workers)
    assert "wpid, status = os.waitpid(" in source, (
        "Arbiter.reap_workers no longer takes 'status' from os.waitpid")
    assert "self.cfg.child_exit(self, worker)" in source, (
        "Arbiter.reap_workers no longer calls child_exit from its own frame")


def test_caller_wait_status_from_a_chained_child_exit():
    cfg = Config()
    seen = []
    cfg.set("child_exit", lambda server, worker: seen.append("user"))
    _gunicorn.chain_hook(cfg, "child_exit",
                         lambda server, worker: seen.append(_gunicorn.caller_wait_status()))

    def reap_workers():  # shaped like Arbiter.reap_workers
        status = 9 << 8
        cfg.child_exit(None, None)
        return status

    reap_workers()
    assert seen == [9 << 8, "user"]
    assert _gunicorn.caller_wait_status() is None  # not under reap_workers


def test_halt_and_reap_workers_shapes():
    assert Arbiter.WORKER_BOOT_ERROR == 3, "gunicorn's worker boot error code is no longer 3"
    params = list(inspect.signature(Arbiter.halt).parameters)
    assert params == ["self", "reason", "exit_status"], (
        f"Arbiter.halt(self, reason, exit_status) changed to {params} (install_halt_once)")
    assert list(inspect.signature(Arbiter.reap_workers).parameters) == ["self"], (
        "Arbiter.reap_workers now takes arguments (install_halt_once replaces it)")
    assert "raise HaltServer(reason, self.WORKER_BOOT_ERROR)" in _source(Arbiter.reap_workers), (
        "reap_workers no longer raises HaltServer for a worker that failed to boot")
    assert issubclass(HaltServer, BaseException)


def test_halt_once_drops_haltserver_while_halting():
    cfg = Config()
    _gunicorn.install_halt_once(cfg)
    _gunicorn.install_halt_once(cfg)  # idempotent

    class FakeArbiter:
        halted: list = []

        def halt(self, reason=None, exit_status=0):
            self.halted.append((reason, exit_status))
            self.reap_workers()

        def reap_workers(self):
            raise HaltServer("Worker failed to boot.", 3)

    arbiter = FakeArbiter()
    cfg.on_starting(arbiter)
    with pytest.raises(HaltServer):
        arbiter.reap_workers()  # not halting yet: gunicorn's own reaction
    arbiter.halt("first", 3)  # reaping inside halt() no longer raises
    assert FakeArbiter.halted == [("first", 3)]


def test_hook_settings_and_worker_attributes():
    cfg = Config()
    for name, arity in HOOKS.items():
        setting = cfg.settings.get(name)
        assert setting is not None, f"gunicorn has no '{name}' setting any more"
        assert callable(setting.get()), f"cfg.settings[{name!r}].get() is not the hook"
        assert get_arity(setting.get()) == arity, f"gunicorn's {name} hook arity changed"
        with pytest.raises(TypeError):  # gunicorn checks arity: chain_hook must keep it
            cfg.set(name, lambda: None)
        _gunicorn.chain_hook(cfg, name, lambda *args: None)
        assert get_arity(cfg.settings[name].get()) == arity
    for name in ("bind", "group"):
        setting = cfg.settings[name]
        assert hasattr(setting, "value") and hasattr(setting, "default"), (
            f"cfg.settings[{name!r}] lost value/default (setting_is_default)")
        assert _gunicorn.setting_is_default(cfg, name)
    cfg.set("bind", ["127.0.0.1:1"])
    assert not _gunicorn.setting_is_default(cfg, "bind")
    assert "self.aborted = False" in _source(base.Worker.__init__), (
        "gunicorn's Worker no longer has 'aborted' (timeouts are classified by it)")


def test_control_socket_is_read_after_setup():
    """The master moves the default control socket in setup(): gunicorn must read it later."""
    cfg = Config()
    default = _gunicorn.setting_default(cfg, "control_socket")
    assert isinstance(default, str) and default.endswith("gunicorn.ctl"), (
        "gunicorn's default control_socket changed")
    assert _gunicorn.setting_is_default(cfg, "control_socket")
    assert "self.worker_class = self.cfg.worker_class" in _source(Arbiter.setup), (
        "Arbiter.setup() no longer resolves the worker class (geworker's setup hook)")
    run = _source(Arbiter.run)
    assert "self.start()" in run and "self._start_control_server()" in run, (
        "Arbiter.run() no longer starts the control server after setup")
    assert "self.cfg.control_socket" in _source(Arbiter._get_control_socket_path), (
        "the arbiter no longer reads cfg.control_socket when it starts the control server")


def test_chain_hook_wraps_once_and_keeps_the_user_hook():
    cfg = Config()
    calls = []
    cfg.set("nworkers_changed", lambda server, new, old: calls.append(("user", new, old)))

    def ours(server, new, old):
        calls.append(("ours", new, old))

    def more(server, new, old):
        calls.append(("more", new, old))

    _gunicorn.chain_hook(cfg, "nworkers_changed", ours)
    first = cfg.settings["nworkers_changed"].get()
    _gunicorn.chain_hook(cfg, "nworkers_changed", ours)
    _gunicorn.chain_hook(cfg, "nworkers_changed", more)
    assert cfg.settings["nworkers_changed"].get() is first  # wrapped once
    cfg.nworkers_changed(None, 3, 2)
    assert calls == [("ours", 3, 2), ("more", 3, 2), ("user", 3, 2)]
    # A reload re-reads the config: a fresh Config gets the user's hook back, chained afresh.
    fresh = Config()
    _gunicorn.chain_hook(fresh, "nworkers_changed", ours)
    calls.clear()
    fresh.nworkers_changed(None, 1, None)
    assert calls == [("ours", 1, None)]


def test_stop_is_where_every_shutdown_goes_and_no_reload():
    assert list(inspect.signature(Arbiter.stop).parameters) == ["self", "graceful"], (
        "Arbiter.stop(self, graceful) changed (install_stop_notice replaces it)")
    assert "self.stop()" in _source(Arbiter.halt), "Arbiter.halt no longer calls self.stop()"
    for handler in (Arbiter.handle_int, Arbiter.handle_quit):
        assert "self.stop(False)" in _source(handler), (
            f"Arbiter.{handler.__name__} no longer stops through self.stop(False)")
    assert "self.stop(" not in _source(Arbiter.reload), (
        "Arbiter.reload now calls stop(): old workers would stop holding on every reload")
    assert "self.kill_workers(sig)" in _source(Arbiter.stop), (
        "Arbiter.stop no longer signals the workers itself (after the notice)")


def test_stop_notice_runs_before_the_arbiter_stops():
    cfg = Config()
    calls = []
    _gunicorn.install_stop_notice(cfg, lambda: calls.append("notice"))

    class FakeArbiter:
        def stop(self, graceful=True):
            calls.append(("stop", graceful))

    arbiter = FakeArbiter()
    cfg.on_starting(arbiter)
    arbiter.stop()
    arbiter.stop(False)
    assert calls == ["notice", ("stop", True), "notice", ("stop", False)]


def test_manage_workers_counts_old_workers_and_reload_terms_them():
    manage = _source(Arbiter.manage_workers)
    assert "if len(self.WORKERS) < self.num_workers:" in manage, (
        "manage_workers no longer spawns only below num_workers (replace_if_held "
        "spawns what it would not)")
    assert "self.kill_worker(pid, signal.SIGTERM)" in manage, (
        "manage_workers no longer TERMs the oldest workers beyond num_workers")
    reload = _source(Arbiter.reload)
    assert reload.index("self.spawn_worker()") < reload.index("self.manage_workers()"), (
        "Arbiter.reload no longer spawns the new workers before stopping the old ones")
    assert isinstance(inspect.getattr_static(Arbiter, "num_workers"), property)


def test_spawn_worker_and_the_workers_table():
    assert list(inspect.signature(Arbiter.spawn_worker).parameters) == ["self"], (
        "Arbiter.spawn_worker() takes arguments now (spawn_extra_worker)")
    spawn = _source(Arbiter.spawn_worker)
    assert "self.WORKERS[pid] = worker" in spawn and "return pid" in spawn, (
        "spawn_worker no longer records the worker in WORKERS and returns its pid")
    assert "except SystemExit:\n            raise" in spawn, (
        "spawn_worker no longer lets a worker's own exit code through "
        "(the boot-retry exit would become a boot error)")
    reap = _source(Arbiter.reap_workers)
    assert "worker = self.WORKERS.pop(wpid, None)" in reap, (
        "reap_workers no longer pops the worker from WORKERS")
    assert reap.index("self.WORKERS.pop(wpid, None)") < reap.index(
        "self.cfg.child_exit(self, worker)"), (
        "reap_workers calls child_exit before dropping the worker from WORKERS")
    halting = re.findall(r"raise HaltServer\(reason, self\.(\w+)\)", reap)
    assert halting == ["WORKER_BOOT_ERROR", "APP_LOAD_ERROR"], (
        f"reap_workers now halts on {halting}: check bootretry.BOOT_RETRY_EXIT")
    assert bootretry.BOOT_RETRY_EXIT not in (Arbiter.WORKER_BOOT_ERROR, Arbiter.APP_LOAD_ERROR)


def test_workers_table_accessors_on_an_arbiter():
    arbiter = Arbiter.__new__(Arbiter)  # no app: only the attributes read
    arbiter.WORKERS = {11: "a", 12: "b"}
    arbiter._num_workers = 3
    assert _gunicorn.arbiter_workers(arbiter) == ["a", "b"]
    assert _gunicorn.target_workers(arbiter) == 3
