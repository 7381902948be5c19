"""lowbit.cost_models"""
