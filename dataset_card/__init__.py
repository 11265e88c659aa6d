"""IMEMNet-C as a Hugging Face dataset: the data contract (``schema``), and the tools that
assemble (``build``), check (``validate``), describe (``card``, ``stats``, ``plots``) and
publish (``publish``) it. Command line: ``python -m dataset_card {build,validate,publish}``.
"""
