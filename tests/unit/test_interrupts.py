"""Interrupts of a local run: held while a task is half counted, raised while the run waits."""

from __future__ import annotations

import os
import signal

import pytest

from filterjob_operator.local.interrupts import Interrupts


def interrupt_me(sig: signal.Signals = signal.SIGINT) -> None:
    os.kill(os.getpid(), sig)  # handled in this (the main) thread before os.kill returns


def test_an_interrupt_while_held_is_raised_at_the_next_check_only() -> None:
    interrupts = Interrupts()
    with interrupts.held():
        interrupt_me()
        assert interrupts.pending
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()  # raised once, not again


def test_an_interrupt_while_waiting_is_raised_at_once() -> None:
    interrupts = Interrupts()
    reached: list[str] = []

    def wait() -> None:
        with interrupts.waiting():
            interrupt_me()
            reached.append("after the signal")

    with interrupts.held(), pytest.raises(KeyboardInterrupt):
        wait()
    assert reached == []
    assert not interrupts.pending


def test_an_interrupt_held_before_a_wait_is_raised_as_the_wait_begins() -> None:
    interrupts = Interrupts()
    with interrupts.held():
        interrupt_me()
        began: list[str] = []

        def wait() -> None:
            with interrupts.waiting():
                began.append("wait")

        with pytest.raises(KeyboardInterrupt):
            wait()
        assert began == []


def test_sigterm_is_held_only_when_it_was_made_an_interrupt() -> None:
    def as_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, as_interrupt)
    try:
        interrupts = Interrupts()
        with interrupts.held():
            assert signal.getsignal(signal.SIGTERM) != as_interrupt
            interrupt_me(signal.SIGTERM)
            assert interrupts.pending
        assert signal.getsignal(signal.SIGTERM) is as_interrupt  # given back as it was
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with Interrupts().held():
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # ending the process stays so
    finally:
        signal.signal(signal.SIGTERM, previous)
