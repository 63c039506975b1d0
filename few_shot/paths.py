"""Where the package's own files are: the project root, the bundled sentiment data and demo model
(one definition each; pure Python)."""
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT_ROOT, "data", "sentiment")
DEFAULT_MODEL_NAME = "models/zh-bert-mini"  # how runs and results name the bundled model
DEFAULT_MODEL = os.path.join(PROJECT_ROOT, *DEFAULT_MODEL_NAME.split("/"))
