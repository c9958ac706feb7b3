"""trtllm-orchestrator: a Hugging Face LLM to a served TensorRT-LLM endpoint, Blackwell first."""

__version__ = "0.1.0"
