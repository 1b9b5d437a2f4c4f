"""The merge gate: the test plan (apps x boards), the scheduler with retries, the verdict."""
