"""Pure builders for the views: charts by topic, table formatting, the digit strip, handwriting
pictures, headline cards, run labels and the theme. No Streamlit session state here."""
