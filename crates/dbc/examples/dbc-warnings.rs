//! Prints the warnings of loading a DBC file: `cargo run -p dbc --example dbc-warnings -- FILE`.

fn main() {
    for path in std::env::args().skip(1) {
        match dbc::Database::load(std::path::Path::new(&path)) {
            Ok((database, warnings)) => {
                for warning in &warnings {
                    println!("{warning}");
                }
                println!("{path}: {} messages, {} warnings", database.messages().count(), warnings.len());
            }
            Err(error) => println!("{error}"),
        }
    }
}
