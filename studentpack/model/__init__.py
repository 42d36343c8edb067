"""The model side: loading encoders (adapter), building students, their heads, pooling and batch features."""
