"""Small helpers every room may use; they import nothing else from fer_hf.

- `offline`: whether the Hugging Face Hub can be reached, answered in seconds.
- `device`: accelerator and native-bf16 detection.
"""
