"""The scheduler: how the lowered program runs, decided for the whole program (see schedule.py)."""
