"""Label decisions: every decision a person made about a label — test images and their own collection
("mine") — newest first, with each image, the label it was given, the model's reading and the decision.
Select a row to undo it; the whole table downloads as CSV. Decisions are made on Suspect labels and in
the inspector, and apply where the sidebar's "Apply my label decisions" is on.
"""

import base64

import pandas as pd
import streamlit as st

from core.images import png_bytes
from dashboard import data, decide, state
from dashboard.ui import decision_format, table_format

s = state.settings()
predictor = state.require(s)
st.title("Label decisions")
decide.notice()

test_images, test_labels = data.test_split()
mine = data.collection()
mine_images, mine_labels = mine["images"], mine["labels"]
tables = {"test": decision_format.decisions_table("test", data.decisions("test"), test_labels,
                                                  predictor.split_logits("test").argmax(axis=1)),
          "mine": decision_format.decisions_table("mine", data.decisions("mine"), mine_labels, None)}
table = pd.concat(tables.values(), ignore_index=True)
if table.empty:
    st.info("No decisions yet. On Suspect labels (or in the inspector) a person can say that a label is right, "
            "relabel an image, or exclude it as ambiguous.")
    st.stop()

counts = table["decision"].value_counts()
c1, c2, c3 = st.columns(3)
c1.metric("Relabelled", int(counts.get("relabel", 0)))
c2.metric("Excluded", int(counts.get("exclude", 0)))
c3.metric("Label confirmed", int(counts.get("keep", 0)))


def picture(split: str, index: int) -> str | None:
    images = test_images if split == "test" else mine_images
    if not 0 <= index < len(images):
        return None
    return "data:image/png;base64," + base64.b64encode(png_bytes(images[index])).decode("ascii")


shown = table.assign(picture=[picture(sp, int(i)) for sp, i in zip(table["split"], table["image"])])
event = st.dataframe(shown[["picture", *table.columns]], hide_index=True, key="decisions_table",
                     on_select="rerun", selection_mode="single-row", width="stretch", column_config={
                         "picture": st.column_config.ImageColumn("image", width="small"),
                         "image": st.column_config.NumberColumn("index", help="the image's index in its split"),
                         "model reads": st.column_config.NumberColumn(
                             "model reads", help="the selected checkpoint's reading (test images only; -1: none)"),
                         "at": st.column_config.DatetimeColumn("decided at (UTC)", format="YYYY-MM-DD HH:mm")})
st.caption("Newest first. Select a row to undo it. 'given' is the label the image came with (MNIST's, or the one "
           "saved with your own digit); a decision never changes MNIST's files.")
picked = event.selection.rows if event else []
if picked:
    row = table.iloc[picked[0]]
    st.button(f"Undo the decision about {row['split']} image {int(row['image'])}", icon=":material/undo:",
              key="decisions_undo", on_click=decide.record, args=(str(row["split"]), int(row["image"]), "clear"))
st.download_button("Download the decisions (CSV)", table_format.plain_csv(table), file_name="digitsum_decisions.csv",
                   mime="text/csv", on_click="ignore", key="decisions_csv")
