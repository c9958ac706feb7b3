"""Recipes: one pydantic model per YAML section (`extra="forbid"`), the loader, and cross-field checks.

Import the concrete names from the submodules (`orchestrator.recipe.root.Recipe`,
`orchestrator.recipe.loader.load_recipe`); this package stays import-light.
"""
