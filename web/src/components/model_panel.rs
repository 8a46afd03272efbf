//! One model's feature sets: a drop zone per role and what is loaded.

use web_sys::{DragEvent, File, FileList, HtmlInputElement};
use yew::prelude::*;

use crate::state::{Loaded, Model, Role, model_letter};

/// Files picked or dropped for a role of a model.
pub type FilesFor = (Vec<File>, usize, Role);

fn files_of(list: FileList) -> Vec<File> {
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

#[derive(Properties, PartialEq)]
pub struct FileZoneProps {
    pub model: usize,
    pub role: Role,
    pub on_files: Callback<FilesFor>,
}

/// A file input that also takes dropped files: feature files, or a text file to embed.
#[function_component(FileZone)]
pub fn file_zone(props: &FileZoneProps) -> Html {
    let FileZoneProps { model, role, on_files } = props;
    let (model, role) = (*model, *role);
    let on_change = {
        let on_files = on_files.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let Some(list) = input.files() else { return };
            on_files.emit((files_of(list), model, role));
            input.set_value("");
        })
    };
    let on_drop = {
        let on_files = on_files.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let Some(list) = e.data_transfer().and_then(|d| d.files()) else {
                return;
            };
            on_files.emit((files_of(list), model, role));
        })
    };
    html! {
        <label class="drop" ondragover={Callback::from(|e: DragEvent| e.prevent_default())} ondrop={on_drop}>
            { format!("{} ", role.name()) }
            <input id={format!("file-{model}-{}", role.key())} type="file" multiple=true onchange={on_change} />
        </label>
    }
}

fn describe(loaded: &Loaded) -> String {
    let s = &loaded.set;
    format!("{}: N {} × D {}, {} classes", s.name(), s.n(), s.d(), s.num_classes())
}

#[derive(Properties, PartialEq)]
pub struct ModelPanelProps {
    pub index: usize,
    pub model: Model,
    pub on_files: Callback<FilesFor>,
}

#[function_component(ModelPanel)]
pub fn model_panel(props: &ModelPanelProps) -> Html {
    let ModelPanelProps { index, model, on_files } = props;
    let lines: Vec<String> = model
        .train
        .iter()
        .chain(model.test.iter())
        .chain(model.ood.iter().map(|(_, l)| l))
        .map(describe)
        .collect();
    html! {
        <section class="model">
            <h3>{ format!("{}: {}", model_letter(*index), model.label) }</h3>
            <div class="zones">
                { for [Role::Train, Role::Test, Role::Ood].into_iter().map(|role| html! { <FileZone model={*index} {role} on_files={on_files.clone()} /> }) }
            </div>
            <ul class="sets">{ for lines.into_iter().map(|l| html! { <li>{ l }</li> }) }</ul>
        </section>
    }
}
