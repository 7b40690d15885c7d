import time

print("warming up the cache", flush=True)
time.sleep(10**6)
