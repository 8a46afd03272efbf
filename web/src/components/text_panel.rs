//! The text encoder: a sentence-transformers model folder picked from disk (never uploaded),
//! the text files being embedded with it, and how fast the last one went.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::io::{Dispatch, load_model_folder};
use crate::state::{State, model_letter};

#[derive(Properties, PartialEq)]
pub struct TextPanelProps {
    pub state: UseReducerHandle<State>,
    pub dispatch: Dispatch,
}

#[function_component(TextPanel)]
pub fn text_panel(props: &TextPanelProps) -> Html {
    let TextPanelProps { state, dispatch } = props;
    let on_pick = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let Some(list) = input.files() else { return };
            let files = (0..list.length()).filter_map(|i| list.get(i)).collect();
            load_model_folder(files, dispatch.clone());
            input.set_value("");
        })
    };
    let folder = match &state.text_model {
        Some(m) => format!(
            "{}: {} files, {:.1} MiB",
            m.0.name,
            m.0.files.len(),
            m.0.bytes() as f64 / 1048576.0
        ),
        None => "no model folder picked".to_string(),
    };
    html! {
        <section id="texts">
            <p class="hint">{ "Texts: pick a sentence-transformers model folder (such as all-MiniLM-L6-v2, which scripts/fetch-data brings), then pick or drop a .jsonl, .csv or .txt file in any role above: it is embedded here, in a Web Worker." }</p>
            <label>{ "model folder " }<input id="model-folder" type="file" webkitdirectory=true multiple=true onchange={on_pick.clone()} /></label>
            <label>{ " or its files " }<input id="model-files" type="file" multiple=true onchange={on_pick} /></label>
            <p id="text-model">{ folder }</p>
            { for state.embedding.iter().map(|e| html! {
                <p class="embedding">
                    { format!("embedding {} for {} {}: {} / {} texts ", e.name, model_letter(e.model), e.role.name(), e.done, e.total) }
                    <progress max={e.total.max(1).to_string()} value={e.done.to_string()} />
                </p>
            }) }
            if let Some(done) = &state.embedded {
                <p id="embedded">{ format!("{}: {} texts embedded in {:.1} s ({:.1} texts/s)", done.name, done.texts, done.seconds, done.texts as f64 / done.seconds.max(1e-9)) }</p>
            }
        </section>
    }
}
