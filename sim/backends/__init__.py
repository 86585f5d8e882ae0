from sim.backends.base import Backend, SerialBackend, make_backend
from sim.backends.ray_backend import RayBackend, ray_runtime

__all__ = ['Backend', 'RayBackend', 'SerialBackend', 'make_backend', 'ray_runtime']
