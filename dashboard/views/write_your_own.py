"""Write your own: draw digits on a canvas or upload a photo of handwritten ones, and see what the selected
checkpoint reads and sums. Each digit gets a numbered box, the 28×28 crop the model saw and its top-2
readings; the user can correct a reading and save the corrected digits to a local collection
(core.collection, a gitignored folder) that the evaluation tools can use as an extra split.

core.handwriting finds the digits (dark ink on light paper and white strokes on black both work).
"""

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from core.collection import save_digits
from core.handwriting import MAX_PIXELS
from core.paths import collection_dir
from dashboard import data, state
from dashboard.ui import handwriting_pictures
from dashboard.views import box_editor, personal_panel

s = state.settings()
predictor = state.require(s)
ss = st.session_state

st.title("Write your own")
st.caption("Write a few digits — on the canvas, or on paper and upload a photo — and see how the selected "
           "checkpoint reads each one and sums them. Correct any misreading and keep the digits for evaluation.")


# The collection tab is drawn first: the writing tab stops early until there is something to read.
write_tab, collection_tab = st.tabs(["Write or upload", "Your collection and personal models"])
with collection_tab:
    try:
        train_digits = personal_panel.collection_summary(s.checkpoint, s.checkpoint_name)
    except (OSError, ValueError) as exc:
        st.warning(f"Cannot read your collection ({handwriting_pictures.folder_name(collection_dir())}): {exc}")
    else:
        personal_panel.train_button(s.checkpoint, s.checkpoint_name, train_digits)
    personal_panel.personal_models()

with write_tab:
    # ----------------------------------------------------------------------------- the image
    source = st.radio("Source", ["Draw", "Upload a photo"], horizontal=True, key="hw_source",
                      label_visibility="collapsed")
    if source == "Draw":
        canvas = st_canvas(stroke_width=14, stroke_color="#FFFFFF", background_color="#000000", width=700, height=180,
                           drawing_mode="freedraw", return_image_data=True, key="hw_canvas")
        st.caption("Draw with the mouse (or a finger); the toolbar above the canvas undoes a stroke or clears it.")
        drawn = bool((canvas.json_data or {}).get("objects"))
        image, origin = (canvas.image_bytes if drawn else None), "canvas"
        if image is None:
            st.info("Draw a few digits above.")
            st.stop()
        image_id = data.drawing_id(image)
    else:
        upload = st.file_uploader("A photo of handwritten digits (PNG or JPEG)", type=["png", "jpg", "jpeg"],
                                  key="hw_upload", help="Dark ink on light paper, digits side by side, at most "
                                                        f"{MAX_PIXELS // 10**6} megapixels.")
        if upload is None:
            st.info("Upload a photo of a few handwritten digits.")
            st.stop()
        image, origin, image_id = upload.getvalue(), "photo", f"upload-{upload.file_id}"

    try:
        pixels, found = data.read_picture(image_id, image, data.file_key(s.checkpoint))
    except ValueError as exc:  # not an image, too large, no digits, too many: core's one line
        st.error(f"Cannot read digits from this {'drawing' if origin == 'canvas' else 'image'}: {exc}")
        st.stop()
    boxes = box_editor.box_editor(image_id, found)
    try:
        reading = found if boxes == tuple(map(tuple, found.boxes.tolist())) else data.reread(image_id, boxes, pixels)
    except ValueError as exc:  # e.g. a box left without ink
        st.error(f"Cannot read these boxes: {exc}. Start over, or edit them again.")
        st.stop()
    picture = data.boxed_picture(image_id, boxes, pixels)

    digits = reading.digits
    count = len(digits)
    prediction = predictor.run(digits[None])
    readings = handwriting_pictures.top_readings(prediction.digit_probs[0])

    st.image(picture, caption=f"{count} digit{'s' * (count != 1)} found, numbered left to right"
             + (" (dark on light: inverted to MNIST's white on black)" if reading.inverted else ""))

    # ----------------------------------------------------------------------------- each digit
    st.subheader("What the model saw")
    key = handwriting_pictures.image_key(digits)
    labels = []
    per_row = 8
    for start in range(0, count, per_row):
        cells = st.columns(per_row)
        for i in range(start, min(start + per_row, count)):
            with cells[i - start]:
                st.image(handwriting_pictures.enlarge(digits[i]), caption=f"#{i + 1}")
                st.markdown(handwriting_pictures.readings_text(readings[i]))
                labels.append(int(st.selectbox(f"Label of digit {i + 1}", range(10), index=readings[i][0][0],
                                               key=f"hw_label_{key}_{i}", label_visibility="collapsed",
                                               help="The true digit: correct it if the model misread it.")))
    corrected = sum(label != r[0][0] for label, r in zip(labels, readings))
    st.caption("Each crop is the 28×28 image the model read (scaled up), with its most likely reading and "
               "probability and the runner-up (2nd). The box under it holds the true label: change it where the "
               f"model is wrong ({corrected} corrected).")

    # ----------------------------------------------------------------------------- the sum
    true_sum, pred_sum = sum(labels), float(prediction.sums[0])
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Predicted sum", f"{pred_sum:.2f}", help=f"rounds to {round(pred_sum)}")
    exact = round(pred_sum) == true_sum
    m2.metric("Sum of your labels", true_sum, delta="exact" if exact else f"off by {round(pred_sum) - true_sum:+d}",
              delta_color="normal" if exact else "inverse", delta_arrow="off")
    if prediction.has_distribution:
        lo, hi = (int(v) for v in prediction.interval[0])
        m3.metric("P(exact)", f"{prediction.p_exact[0]:.1%}",
                  help=f"the model's probability that the sum is exactly {round(pred_sum)}")
        m4.metric("95% interval", f"{lo}–{hi}", help="central 95% credible interval of the sum (inclusive)",
                  delta="holds your sum" if lo <= true_sum <= hi else "misses it",
                  delta_color="normal" if lo <= true_sum <= hi else "inverse", delta_arrow="off")
    else:
        st.caption(state.no_distribution_note(predictor))

    # ----------------------------------------------------------------------------- the collection
    saved = ss.setdefault("hw_saved", set())  # (image, labels) already saved in this session: never twice
    token = (key, tuple(labels))


    def save() -> None:
        """Before the rerun, so the button comes back disabled and the message shows once."""
        try:
            path = save_digits(digits, np.array(labels, np.int64), source=origin)
        except (OSError, ValueError) as exc:
            ss["hw_message"] = ("error", f"Cannot save these digits: {exc}")
        else:
            saved.add(token)
            ss["hw_message"] = ("success", f"Saved {count} digit{'s' * (count != 1)} to {handwriting_pictures.folder_name(path.parent)}")


    # The boxes start at the model's readings: saving them unchecked would store the model's guesses as
    # truth, and any evaluation on the collection would flatter the model. The user confirms first.
    checked = st.checkbox("I have checked every label", key=f"hw_checked_{key}",
                          help="The collection is ground truth for evaluation: confirm each box holds the digit you wrote.")
    st.button("Save corrected digits to my collection", icon=":material/save:", key="hw_save", on_click=save,
              disabled=token in saved or not checked, help="Adds these crops with your labels to a local folder that the "
                                            "evaluation tools can use as an extra split.")
    kind, message = ss.pop("hw_message", (None, None))
    if kind:
        (st.success if kind == "success" else st.error)(message)
    elif token in saved:
        st.caption("These digits, with these labels, are in your collection.")
