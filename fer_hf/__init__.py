"""fer-hf: facial expression recognition the Hugging Face way.

A timm network wrapped as a transformers `PreTrainedModel` (`modeling`), trained with `FerTrainer`
(`trainer`) on harmonised sources (`labels`, `data`, `transforms`, `synthetic`). Importing the
package does nothing else: no Hub access, no heavy imports until a submodule is used.
"""

__version__ = "0.1.0"

from .data.labels import CLASSES

__all__ = ["CLASSES", "__version__"]
