"""The one token bucket: `rate` tokens a second, at most `burst` saved up. The API client
waits for its token (client-side QPS); the webhook receiver refuses a call without one."""

import time


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, *, borrow: bool = False) -> float:
        """Take a token: 0.0 when one was there. Else the seconds until there will be one;
        with `borrow` the token is taken in advance (the caller then waits that long),
        without it nothing is taken."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 or borrow:
            self.tokens -= 1.0
            return max(0.0, -self.tokens / self.rate)
        return (1.0 - self.tokens) / self.rate
