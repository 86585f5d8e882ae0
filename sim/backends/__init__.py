from sim.backends.ray_backend import run_with_ray

__all__ = ['run_with_ray']
