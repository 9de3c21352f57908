"""Counterfactual explanations: generators (search, openai, local_llm, hybrid), the
minimality gate, the append-only cache, and CFE quality figures."""
