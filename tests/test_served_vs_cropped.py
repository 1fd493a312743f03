"""benchmarks/served_vs_cropped.py: pre-cropped against served accuracy, and what predict.py answers without a face."""

from conftest import save_confident_vit


def test_photos_without_a_face_count_wrong_and_predict_pys_answer_is_reported(tmp_path, suite_root):
    import served_vs_cropped as bench

    from fer_hf.data.labels import CLASSES
    from fer_hf.data.transforms import open_image
    from fer_hf.evaluation.suite import load_set
    from fer_hf.inference.recognizer import EmotionRecognizer

    model = save_confident_vit(tmp_path / "model", depth=1)
    data_dir = suite_root / "crossdomain_dev" / "sfew"
    out = tmp_path / "served.json"
    result = bench.main(["--model", str(model), "--data", str(data_dir), "--framings", "served",
                         "--output", str(out)])
    served = result["served"]["served"]
    assert result["images"] == 14 and out.exists()
    assert served["no_face"] == 14 and served["accuracy"] == 0.0  # noise squares: YuNet finds no face in any
    # predict.py's answer there: the whole photo (the face on its padded canvas), classified as one face
    data, rec = load_set(str(data_dir), "train").with_format(None), EmotionRecognizer.from_pretrained(str(model))
    whole = [rec.recognize(bench.as_photo(open_image(r["image"]), 0.5, 1), detect=False)[0].emotion == CLASSES[r["label"]]
             for r in data]
    assert served["with_fallback"] == sum(whole) / 14 > 0
