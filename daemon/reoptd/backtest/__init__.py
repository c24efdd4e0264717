"""Backtesting a policy: replay a history through the daemon's loop on a simulated clock."""

from reoptd.backtest._cache import BacktestCache
from reoptd.backtest._daemon import Replay, replay_history
from reoptd.backtest._history import BacktestError, Span, load_history, parse_span
from reoptd.backtest._plot import plot_report
from reoptd.backtest._run import report_figures, run_backtest

__all__ = [
    "BacktestCache",
    "BacktestError",
    "Replay",
    "Span",
    "load_history",
    "parse_span",
    "plot_report",
    "replay_history",
    "report_figures",
    "run_backtest",
]
