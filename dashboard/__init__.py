"""digitsum Streamlit dashboard: UI only; every number comes from core's public API."""
