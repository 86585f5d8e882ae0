"""Exports of trained models to formats that run without hybat: a residual model as a
serialized ``casadi.Function`` (``hybat export RUN --format casadi``)."""

from hybrid.export.casadi import casadi_step, export_casadi, roll

__all__ = ['casadi_step', 'export_casadi', 'roll']
