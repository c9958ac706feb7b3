"""The endpoint benchmark: a bounded async streaming load test of any OpenAI-compatible server.

Modules, one job each:
  target   - which URL, model name, tokenizer and engine label a run measures
  prompt   - prompts of exactly N tokens, output tokens counted from the stream
  client   - one streamed request, and the probe that picks the API and the fixed-length method
  sweep    - warm-up, concurrency levels or Poisson request rate, time budget, server-gone detection
  stats    - percentiles, per-level summaries and the two headline figures
  report   - bench.json, manifest record, PNG plot, rich table
  run      - `run_bench`, the one function `orchestrator bench` calls
"""
