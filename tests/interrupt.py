"""A stand-in for a process killed mid-build: the wrapped step dies on its n-th call."""


def dies_on_call(real, n: int = 2):
    """`real`, except that call number `n` raises KeyboardInterrupt (as Ctrl-C or a kill would)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapper
