"""lowbit.sim"""
